import { fireEvent, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { Box } from "../lib/types";
import { PhotoBoxes } from "./PhotoBoxes";

const TWO: { index: number; box: Box }[] = [
  { index: 0, box: [0, 0, 200, 100] },
  { index: 1, box: [300, 150, 400, 200] },
];

describe("PhotoBoxes", () => {
  it("draws each dog's box in percent of the photo, the current one highlighted", () => {
    render(<PhotoBoxes src="blob:photo" alt="Your photo" dogs={TWO} width={400} height={200} selected={1} />);
    const boxes = screen.getAllByTestId("dog-box");
    expect(boxes).toHaveLength(2);
    expect(boxes[0]).toHaveStyle({ left: "0%", top: "0%", width: "50%", height: "50%" });
    expect(boxes[1]).toHaveStyle({ left: "75%", top: "75%", width: "25%", height: "25%" });
    expect(boxes[0]).not.toHaveAttribute("data-current");
    expect(boxes[1]).toHaveAttribute("data-current");
    expect(boxes.map((b) => b.textContent)).toEqual(["1", "2"]);
    expect(screen.getByRole("img", { name: "Your photo" })).toHaveAttribute("src", "blob:photo");
    // nothing to pick without onSelect
    expect(screen.queryByRole("button")).toBeNull();
  });

  it("lets the user pick another dog with its button, from the keyboard", async () => {
    const onSelect = vi.fn();
    render(<PhotoBoxes src="blob:p" alt="p" dogs={TWO} width={400} height={200} selected={0} onSelect={onSelect} />);
    const group = screen.getByRole("group", { name: "Which dog" });
    expect(group).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Dog 1" })).toHaveAttribute("aria-pressed", "true");
    const second = screen.getByRole("button", { name: "Dog 2" });
    expect(second).toHaveAttribute("aria-pressed", "false");
    second.focus();
    await userEvent.keyboard("{Enter}");
    expect(onSelect).toHaveBeenCalledWith(1);
  });

  it("lets the user pick a dog by clicking its box", async () => {
    const onSelect = vi.fn();
    render(<PhotoBoxes src="blob:p" alt="p" dogs={TWO} width={400} height={200} selected={0} onSelect={onSelect} />);
    await userEvent.click(screen.getAllByTestId("dog-box")[1]);
    expect(onSelect).toHaveBeenCalledWith(1);
  });

  it("offers no choice for a single dog, nor while disabled (the button keeping the keyboard's focus)", async () => {
    const onSelect = vi.fn();
    const { rerender } = render(
      <PhotoBoxes src="blob:p" alt="p" dogs={TWO.slice(0, 1)} width={400} height={200} onSelect={onSelect} />,
    );
    expect(screen.queryByRole("group")).toBeNull();
    expect(screen.getByTestId("dog-box")).toHaveAttribute("data-current"); // the one dog is the one used
    rerender(<PhotoBoxes src="blob:p" alt="p" dogs={TWO} width={400} height={200} selected={0} onSelect={onSelect} disabled />);
    const second = screen.getByRole("button", { name: "Dog 2" });
    expect(second).toHaveAttribute("aria-disabled", "true");
    second.focus();
    await userEvent.keyboard("{Enter}");
    expect(second).toHaveFocus();
    await userEvent.click(screen.getAllByTestId("dog-box")[1]);
    expect(onSelect).not.toHaveBeenCalled();
  });

  it("waits for the image's natural size when the photo's size is not given", () => {
    render(<PhotoBoxes src="/photo.jpg" alt="A dog" dogs={[{ index: 0, box: [50, 0, 100, 100] }]} />);
    expect(screen.queryByTestId("dog-box")).toBeNull();
    const img = screen.getByRole("img", { name: "A dog" });
    Object.defineProperty(img, "naturalWidth", { value: 200 });
    Object.defineProperty(img, "naturalHeight", { value: 100 });
    fireEvent.load(img);
    expect(screen.getByTestId("dog-box")).toHaveStyle({ left: "25%", top: "0%", width: "25%", height: "100%" });
  });

  it("crops a thumbnail around its one dog, where asked to, and places the box on that crop", () => {
    render(
      <PhotoBoxes src="blob:p" alt="p" dogs={[{ index: 0, box: [300, 50, 400, 150] }]} width={400} height={200} fit="cover" cropToDog />,
    );
    // 400 x 200 in a square: the right half shows, where the dog is (a centre crop would cut it off)
    expect(screen.getByRole("img", { name: "p" }).style.objectPosition).toBe("100% 50%");
    expect(screen.getByTestId("dog-box")).toHaveStyle({ left: "50%", width: "50%", top: "25%", height: "50%" });
  });
});
