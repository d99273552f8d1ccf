import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { PhotoPicker } from "./PhotoPicker";

describe("PhotoPicker", () => {
  it("takes a dropped photo", () => {
    const onPick = vi.fn();
    render(<PhotoPicker label="Choose a photo" onPick={onPick} />);
    const file = new File(["x"], "dog.jpg", { type: "image/jpeg" });
    fireEvent.drop(screen.getByTestId("photo-picker"), { dataTransfer: { files: [file] } });
    expect(onPick).toHaveBeenCalledWith(file);
  });

  it("offers the phone camera through a labelled input", async () => {
    const onPick = vi.fn();
    render(<PhotoPicker label="Choose a photo" onPick={onPick} />);
    const camera = screen.getByLabelText("Take a photo");
    expect(camera).toHaveAttribute("capture", "environment");
    expect(camera).toHaveAttribute("accept", "image/*");
    await userEvent.upload(camera, new File(["x"], "cam.jpg", { type: "image/jpeg" }));
    expect(onPick).toHaveBeenCalledTimes(1);
  });

  it("shows a note instead of a broken preview", () => {
    render(<PhotoPicker label="Choose a photo" onPick={() => {}} previewUrl="blob:bad" />);
    fireEvent.error(screen.getByRole("img", { name: "The photo you picked" }));
    expect(screen.getByText("No preview for this file")).toBeInTheDocument();
  });

  it("says which file it takes when several are dropped", () => {
    const onPick = vi.fn();
    render(<PhotoPicker label="Choose a photo" onPick={onPick} />);
    const first = new File(["x"], "rex.jpg", { type: "image/jpeg" });
    const files = [first, new File(["y"], "max.jpg", { type: "image/jpeg" }), new File(["z"], "bo.jpg", { type: "image/jpeg" })];
    fireEvent.drop(screen.getByTestId("photo-picker"), { dataTransfer: { files } });
    expect(onPick).toHaveBeenCalledWith(first);
    expect(screen.getByRole("status")).toHaveTextContent("3 files dropped: this takes one photo, so the first (rex.jpg) is used.");
  });

  it("keeps its inputs focusable while disabled, and takes no photo then", async () => {
    const onPick = vi.fn();
    render(<PhotoPicker label="Choose a photo" onPick={onPick} disabled />);
    const input = screen.getByLabelText("Choose a photo");
    expect(input).toBeEnabled(); // a disabled input would drop the keyboard's focus to the page's start
    expect(input).toHaveAttribute("aria-disabled", "true");
    input.focus();
    expect(input).toHaveFocus();
    await userEvent.upload(input, new File(["x"], "dog.jpg", { type: "image/jpeg" }));
    fireEvent.drop(screen.getByTestId("photo-picker"), { dataTransfer: { files: [new File(["x"], "d.jpg")] } });
    expect(onPick).not.toHaveBeenCalled();
  });
});
