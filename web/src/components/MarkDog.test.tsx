import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { drag, showPhoto } from "../testing";
import { MarkDog, nudge } from "./MarkDog";

describe("MarkDog", () => {
  it("turns a drag on the shown photo into a box in the photo's own pixels, corners in order", async () => {
    const onMark = vi.fn();
    render(<MarkDog src="blob:p" action="Search for this dog" onMark={onMark} onCancel={() => {}} />);
    const send = screen.getByRole("button", { name: "Search for this dog" });
    expect(send).toBeDisabled(); // nothing marked yet
    showPhoto();
    drag([130, 120], [30, 50]); // dragged up and to the left
    expect(screen.getByTestId("marked-box").style.left).toBe("10%");
    await userEvent.click(send);
    expect(onMark).toHaveBeenCalledWith([80, 120, 480, 400]);
  });

  it("keeps the box inside the photo when the pointer leaves it", async () => {
    const onMark = vi.fn();
    render(<MarkDog src="blob:p" action="Add" onMark={onMark} onCancel={() => {}} />);
    showPhoto();
    drag([110, 95], [400, 400]);
    await userEvent.click(screen.getByRole("button", { name: "Add" }));
    expect(onMark).toHaveBeenCalledWith([400, 300, 800, 600]);
  });

  it("refuses a box too small to hold a dog, and offers the whole photo", async () => {
    const onMark = vi.fn();
    render(<MarkDog src="blob:p" action="Add" onMark={onMark} onCancel={() => {}} />);
    showPhoto();
    drag([50, 50], [52, 90]); // 8 photo pixels wide
    expect(screen.getByText("The box is too small: mark the whole dog.")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Add" })).toBeDisabled();
    await userEvent.click(screen.getByRole("button", { name: "The whole photo" }));
    await userEvent.click(screen.getByRole("button", { name: "Add" }));
    expect(onMark).toHaveBeenCalledWith([0, 0, 800, 600]);
  });

  it("cancels", async () => {
    const onCancel = vi.fn();
    render(<MarkDog src="blob:p" action="Add" onMark={() => {}} onCancel={onCancel} />);
    await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(onCancel).toHaveBeenCalled();
  });

  it("marks from the keyboard: the arrows move a box that starts in the middle, Shift and the arrows size it", async () => {
    const onMark = vi.fn();
    render(<MarkDog src="blob:p" action="Add" onMark={onMark} onCancel={() => {}} />);
    const photo = screen.getByRole("application", { name: "The photo to mark the dog on" });
    expect(photo).toHaveFocus(); // it replaced the button that opened it
    showPhoto(); // 800 x 600: a step is 16 by 12 pixels
    await userEvent.keyboard("{ArrowUp}"); // the first key: half the photo, in its middle
    await userEvent.keyboard("{ArrowLeft}{ArrowLeft}{ArrowUp}");
    await userEvent.keyboard("{Shift>}{ArrowRight}{ArrowDown}{ArrowDown}{/Shift}");
    expect(screen.getByText("The box: 168, 138 to 584, 462 of 800 by 600 pixels.")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Add" }));
    expect(onMark).toHaveBeenCalledWith([168, 138, 584, 462]);
  });

  it("keeps the box inside the photo and at least as large as a dog, from the keyboard too", () => {
    const photo = { width: 800, height: 600 };
    expect(nudge([0, 0, 100, 100], [-1, -1], false, photo)).toEqual([0, 0, 100, 100]);
    expect(nudge([750, 0, 800, 100], [1, 0], false, photo)).toEqual([750, 0, 800, 100]);
    expect(nudge([0, 0, 20, 20], [-1, -1], true, photo)).toEqual([0, 0, 16, 16]);
    expect(nudge([0, 0, 795, 595], [1, 1], true, photo)).toEqual([0, 0, 800, 600]);
  });

  it("gives the frame the photo's shape, for a small photo to be shown as large as a large one", () => {
    render(<MarkDog src="blob:p" action="Add" onMark={() => {}} onCancel={() => {}} />);
    showPhoto(106, 122);
    expect(screen.getByTestId("mark-area").style.getPropertyValue("--aspect")).toBe(String(106 / 122));
  });

  it("says so, with nothing to draw on, when the file cannot be shown", () => {
    render(<MarkDog src="blob:p" action="Add" onMark={() => {}} onCancel={() => {}} />);
    fireEvent.error(screen.getByAltText("Your photo: drag a box around the dog"));
    expect(screen.getByRole("alert")).toHaveTextContent("This file cannot be shown as a photo");
    expect(screen.queryByTestId("mark-area")).toBeNull();
    expect(screen.getByRole("button", { name: "The whole photo" })).toBeDisabled();
    expect(screen.getByRole("button", { name: "Cancel" })).toHaveFocus();
  });
});
