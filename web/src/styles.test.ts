// What the style sheet must keep for those who see less well or use a keyboard (WCAG 1.4.11, 2.4.7): read as text.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const css = readFileSync(join(import.meta.dirname, "styles.css"), "utf8");
/** A colour variable as #rrggbb (#fff is #ffffff). */
function variable(name: string): string {
  const hex = new RegExp(`--${name}:\\s*#([0-9a-f]{6}|[0-9a-f]{3})\\b`, "i").exec(css)![1];
  return `#${hex.length === 3 ? [...hex].map((c) => c + c).join("") : hex}`;
}
const rule = (selector: string) => new RegExp(`(^|\\n)${selector.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[^{]*\\{([^}]*)\\}`).exec(css)?.[2] ?? "";

/** The contrast ratio of two colours (WCAG's relative luminance). */
function contrast(a: string, b: string): number {
  const luminance = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((v) =>
      v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("styles.css", () => {
  it("draws a field's edge at 3:1 at least against the card and the page", () => {
    expect(rule("input, select, textarea")).toContain("var(--field-border)");
    for (const background of [variable("card"), variable("bg")]) {
      expect(contrast(variable("field-border"), background)).toBeGreaterThanOrEqual(3);
    }
  });

  it("rings a focused button apart from its own colour: another colour, with a gap", () => {
    const ring = rule(".button:focus-visible");
    expect(ring).toMatch(/outline-offset:\s*[1-9]/);
    const colour = /outline:\s*\d+px solid var\(--([\w-]+)\)/.exec(ring)![1];
    expect(contrast(variable(colour), variable("accent"))).toBeGreaterThanOrEqual(3);
    expect(contrast(variable(colour), variable("bg"))).toBeGreaterThanOrEqual(3);
  });

  it("wraps a heading with a long word (a name without spaces) instead of widening the page", () => {
    expect(rule("h1")).toContain("overflow-wrap: anywhere");
  });

  it("wraps a long word in a card's heading and in any sentence, not past the screen", () => {
    expect(rule("h2")).toContain("overflow-wrap: anywhere");
    expect(rule("body")).toContain("overflow-wrap: break-word");
  });

  it("shows a dog's notes with the line breaks they were typed with", () => {
    expect(rule(".fields-list dd")).toContain("white-space: pre-wrap");
  });
});
