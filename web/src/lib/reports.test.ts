import { afterEach, describe, expect, it } from "vitest";
import {
  distanceKm,
  formatDistance,
  formatWhen,
  jobReport,
  localDayBound,
  localInput,
  parsePlace,
  reportFormFields,
  reportSearchFields,
  takenNote,
  withTaken,
} from "./reports";

describe("reports", () => {
  it("reads a place typed as lat, lon and says what is wrong with one", () => {
    expect(parsePlace(" 52.52 , 13.405 ")).toEqual({ lat: 52.52, lon: 13.405 });
    expect(parsePlace("-33.9,151.2")).toEqual({ lat: -33.9, lon: 151.2 });
    expect(() => parsePlace("52.52")).toThrow("latitude, longitude");
    expect(() => parsePlace("52.52,")).toThrow("latitude, longitude");
    expect(() => parsePlace("north, east")).toThrow("latitude, longitude");
    expect(() => parsePlace("95, 13")).toThrow("-90 to 90");
    expect(() => parsePlace("52, 181")).toThrow("-180 to 180");
  });

  it("makes the add form's fields of a report, the time in UTC", () => {
    expect(reportFormFields({})).toEqual([]);
    const fields = reportFormFields({ status: "lost", place: "52.52, 13.405", seenAt: "2026-11-30T18:05" });
    expect(fields.slice(0, 2)).toEqual([
      ["status", "lost"],
      ["location", "52.52,13.405"],
    ]);
    expect(fields[2][0]).toBe("seen_at");
    expect(new Date(fields[2][1]).getTime()).toBe(new Date("2026-11-30T18:05").getTime()); // the browser's zone
    expect(fields[2][1]).toMatch(/Z$/);
    expect(() => reportFormFields({ place: "here" })).toThrow("latitude, longitude");
  });

  it("makes a search's lost & found fields: counterparts win over a status", () => {
    expect(reportSearchFields(undefined)).toEqual([]);
    expect(reportSearchFields({ status: "lost", forStatus: "found", near: "1, 2", radiusKm: "5", seenAfter: "2026-11-01" }))
      .toEqual([
        ["for_status", "found"],
        ["near", "1,2"],
        ["radius_km", "5"],
        ["seen_after", "2026-11-01T00:00:00+01:00"],
      ]);
    expect(reportSearchFields({ status: "sighted", seenBefore: "2026-11-30" })).toEqual([
      ["status", "sighted"],
      ["seen_before", "2026-11-30T23:59:59.999+01:00"],
    ]);
    expect(() => reportSearchFields({ radiusKm: "5" })).toThrow("needs a place");
    expect(() => reportSearchFields({ near: "1,2", radiusKm: "0" })).toThrow("above 0");
    expect(() => reportSearchFields({ near: "1,2", radiusKm: "30000" })).toThrow("up to 20000");
  });

  it("measures and shows distances and times as the server does", () => {
    expect(distanceKm({ lat: 52.52, lon: 13.405 }, { lat: 48.8566, lon: 2.3522 })).toBeCloseTo(878, -1);
    expect(distanceKm({ lat: 0, lon: 179.9 }, { lat: 0, lon: -179.9 })).toBeCloseTo(22.24, 1);
    expect(formatDistance(0.43)).toBe("430 m");
    expect(formatDistance(12.345)).toBe("12.3 km");
    expect(formatDistance(1234.5)).toBe("1,235 km");
    expect(formatWhen("not a time")).toBe("not a time");
  });

  it("shows a time on the reader's clock (Berlin in these tests), the zone named, summer time included", () => {
    expect(formatWhen("2026-11-30T17:05:00+00:00")).toBe("30 Nov 2026, 18:05 CET");
    expect(formatWhen("2026-07-01T23:30:00Z")).toBe("2 Jul 2026, 01:30 CEST"); // the next day there
  });

  it("fills a report in from what its photo says, and says what the photo does not", () => {
    const both = { seen_at: "2026-11-30T17:05:09+00:00", location: { lat: -33.44, lon: -70.65 }, unknown: {} };
    const seen = localInput(both.seen_at);
    expect(new Date(seen).getTime()).toBe(new Date("2026-11-30T17:05:00Z").getTime()); // the browser's zone, minutes
    expect(withTaken({ status: "found", place: "1, 2" }, both)).toEqual({
      status: "found", place: "-33.44, -70.65", seenAt: seen });
    expect(takenNote(both)).toBe("Filled in from the photo: where and when it was taken.");
    const whenOnly = { seen_at: both.seen_at, location: null,
                       unknown: { location: "the photo does not say where it was taken (no GPS position)" } };
    expect(withTaken({ place: "1, 2" }, whenOnly)).toEqual({ place: "1, 2", seenAt: seen }); // the user's place kept
    expect(takenNote(whenOnly)).toBe("Filled in from the photo: when it was taken. The photo does not say where it " +
      "was taken (no GPS position).");
    // what the form then sends is the same instant, in UTC
    expect(reportFormFields(withTaken({}, both))).toEqual([["location", "-33.44,-70.65"],
                                                          ["seen_at", "2026-11-30T17:05:00.000Z"]]);
  });

  it("reads a camera's time without its zone in the browser's", () => {
    const camera = { seen_at: null, location: null, local_time: "2026-11-30T18:05:09", unknown: {
      seen_at: "the photo says it was taken at 2026-11-30 18:05:09 but not in which time zone (give time_zone)",
      location: "the photo does not say where it was taken (no GPS position)" } };
    expect(withTaken({ status: "found" }, camera)).toEqual({ status: "found", seenAt: "2026-11-30T18:05" });
    expect(takenNote(camera)).toBe("Filled in from the photo: when it was taken. Its camera's clock does not say " +
      "its time zone: the time is read as this computer's. The photo does not say where it was taken (no GPS position).");
    // sent as that wall time in this browser's zone
    expect(reportFormFields(withTaken({}, camera))).toEqual([["seen_at", new Date("2026-11-30T18:05").toISOString()]]);
    // an older server says nothing of the camera's time: the field is left as it was
    const older = { ...camera, local_time: undefined };
    expect(withTaken({ seenAt: "2026-11-29T10:00" }, older)).toEqual({ seenAt: "2026-11-29T10:00" });
    expect(takenNote(older)).toContain("but not in which time zone");
  });

  it("asks a bulk job to read each photo's time and place, a camera's time in the browser's zone", () => {
    expect(jobReport("found", false)).toEqual({ status: "found" });
    expect(jobReport("", true, "Europe/Berlin")).toEqual({ seen_at: "photo", location: "photo",
                                                          time_zone: "Europe/Berlin" });
    expect(jobReport("", true, null)).toEqual({ seen_at: "photo", location: "photo" });
  });
});

describe("a day of the date filters, on the reader's clock", () => {
  const zone = process.env.TZ;
  afterEach(() => {
    process.env.TZ = zone; // Node reads TZ anew when it changes
  });

  it("is the reader's whole day in Berlin (the tests' zone), not the day in UTC", () => {
    // 0:30 on the 1st in Berlin is 23:30 UTC on the 30th: a bare date (a day in UTC) would count it to the 30th
    const after = localDayBound("2026-12-01", false);
    const before = localDayBound("2026-11-30", true);
    expect([after, before]).toEqual(["2026-12-01T00:00:00+01:00", "2026-11-30T23:59:59.999+01:00"]);
    expect(Date.parse(after)).toBe(Date.parse("2026-11-30T23:00:00Z"));
    expect(Date.parse(before) + 1).toBe(Date.parse(after));
  });

  it("gives each end of a day of a clock change its own offset", () => {
    // Berlin's clocks go forward on 29 Mar 2026 at 2:00: a day of 23 hours
    expect(localDayBound("2026-03-29", false)).toBe("2026-03-29T00:00:00+01:00");
    expect(localDayBound("2026-03-29", true)).toBe("2026-03-29T23:59:59.999+02:00");
  });

  it("is the day west of UTC too, and its first instant where the clock skips midnight", () => {
    process.env.TZ = "America/Los_Angeles";
    expect(localDayBound("2026-11-30", false)).toBe("2026-11-30T00:00:00-08:00");
    expect(localDayBound("2026-11-30", true)).toBe("2026-11-30T23:59:59.999-08:00");
    expect(reportSearchFields({ seenAfter: "2026-07-04", seenBefore: "2026-07-04" })).toEqual([
      ["seen_after", "2026-07-04T00:00:00-07:00"],
      ["seen_before", "2026-07-04T23:59:59.999-07:00"],
    ]);
    process.env.TZ = "America/Santiago"; // 6 Sep 2026: 0:00 is skipped, the day starts at 1:00 (-03:00)
    expect(localDayBound("2026-09-06", false)).toBe("2026-09-06T01:00:00-03:00");
    process.env.TZ = "Asia/Kolkata";
    expect(localDayBound("2026-11-30", false)).toBe("2026-11-30T00:00:00+05:30");
  });

  it("leaves what is no date for the server to refuse, and reads a year below 100 as it is", () => {
    expect(localDayBound("soon", false)).toBe("soon");
    expect(localDayBound("0050-06-01", false)).toMatch(/^0050-06-01T00:00:00[+-]\d\d:\d\d$/);
  });
});
