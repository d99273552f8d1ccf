import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { drag, showPhoto } from "../testing";
import { MarkDog } from "./MarkDog";

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
});
