import { describe, expect, it } from "vitest";
import { changedFields, formOf } from "./EditDogForm";

describe("changedFields", () => {
  const before = formOf({
    name: "Rex",
    notes: "shy",
    status: "found",
    location: { lat: 52.52, lon: 13.405 },
    seen_at: "2026-11-30T17:05:09+00:00",
  });

  it("sends nothing for a form left as it was (the time shown to the minute included)", () => {
    expect(changedFields(before, before)).toEqual({});
  });

  it("sends what changed, as the add form sends it, and an emptied field as null", () => {
    const after = {
      fields: { ...before.fields, name: " Rexy ", notes: "", breed: "beagle" },
      report: { status: "home" as const, place: "48.1, 11.6", seenAt: "" },
    };
    expect(changedFields(before, after)).toEqual({
      name: "Rexy",
      breed: "beagle",
      notes: null,
      status: "home",
      location: "48.1,11.6",
      seen_at: null,
    });
  });

  it("throws on a place that is none", () => {
    expect(() => changedFields(before, { ...before, report: { ...before.report, place: "Berlin" } })).toThrow(
      'Place "Berlin": write it as latitude, longitude',
    );
  });
});
