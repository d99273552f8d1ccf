/** The browser tab's title for a page: "Rex · dogsearch"; none: the app's name alone. */
export function setPageTitle(page?: string | null): void {
  document.title = page ? `${page} · dogsearch` : "dogsearch";
}
