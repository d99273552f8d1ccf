import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { addDog } from "../lib/api";
import { json } from "../testing";
import { changedFields, EditDogForm, formOf } from "./EditDogForm";

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

describe("EditDogForm's name and breed", () => {
  const dog = { id: "d1", payload: { name: "Goldie" }, image_url: "/i", thumbnail_url: "/t" };

  function renderForm(answer: () => Response) {
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => answer());
    vi.stubGlobal("fetch", fetchMock);
    const onSaved = vi.fn();
    render(<EditDogForm dog={dog} onSaved={onSaved} onCancel={() => {}} />);
    return { fetchMock, onSaved };
  }

  it("turns a tab or another control character pasted into the name (a spreadsheet's cells) into a space, as sent", async () => {
    const { fetchMock, onSaved } = renderForm(() => json(200, { ...dog, payload: { name: "Goldie Jr" } }));
    const name = screen.getByLabelText("Name");
    fireEvent.change(name, { target: { value: "Goldie\tJr" } });
    expect(name).toHaveValue("Goldie Jr");
    fireEvent.change(screen.getByLabelText("Breed"), { target: { value: "golden\t\u001bretriever" } });
    expect(screen.getByLabelText("Breed")).toHaveValue("golden retriever");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(JSON.parse(fetchMock.mock.calls[0][1]!.body as string)).toEqual({ name: "Goldie Jr", breed: "golden retriever" });
  });

  it("says a server's refusal of a control character in words", async () => {
    renderForm(() =>
      json(422, {
        detail: "field 'name': 'Goldie\\tJr' holds a control character (a NUL, a line break, an escape)",
        code: "invalid_input",
      }),
    );
    await userEvent.type(screen.getByLabelText("Name"), " Jr");
    await userEvent.click(screen.getByRole("button", { name: "Save" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      /^The name holds a tab, a line break or another control character, which cannot be stored/,
    );
  });

  it("says when a name is cut at 200 characters, instead of cutting it unseen", async () => {
    renderForm(() => json(200, dog));
    const name = screen.getByLabelText("Name");
    fireEvent.change(name, { target: { value: "a".repeat(190) } });
    expect(screen.getByTestId("name-count")).toHaveTextContent("190/200 characters");
    fireEvent.change(name, { target: { value: "b".repeat(250) } });
    expect(name).toHaveValue("b".repeat(200));
    expect(screen.getByTestId("name-count")).toHaveTextContent(
      "200/200 characters: a name takes at most 200, the rest was left out.",
    );
    expect(name).toHaveAccessibleDescription(/the rest was left out/);
  });
});

describe("the add form's name and breed", () => {
  it("are sent as one line", async () => {
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) =>
      json(201, { id: "d1", payload: {}, image_url: "/i", thumbnail_url: "/t" }),
    );
    vi.stubGlobal("fetch", fetchMock);
    await addDog({ image: new File(["x"], "dog.jpg"), name: "Goldie\tJr ", breed: "golden\nretriever", notes: "shy\nat first" });
    const form = fetchMock.mock.calls[0][1]!.body as FormData;
    expect(form.get("name")).toBe("Goldie Jr");
    expect(form.get("breed")).toBe("golden retriever");
    expect(form.get("notes")).toBe("shy\nat first"); // notes keep their lines
  });
});
