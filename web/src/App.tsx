import { useEffect, useRef } from "react";
import { AccountControl, RequireScope } from "./components/SignIn";
import { AddDogPage } from "./pages/AddDogPage";
import { DogPage } from "./pages/DogPage";
import { GalleryPage } from "./pages/GalleryPage";
import { JobsPage } from "./pages/JobsPage";
import { MatchPage } from "./pages/MatchPage";
import { SearchPage } from "./pages/SearchPage";
import { WatchesPage } from "./pages/WatchesPage";
import { allows } from "./lib/access";
import { STATUSES } from "./lib/reports";
import { AuthProvider, useAuth } from "./lib/auth";
import { useRoute, type Route } from "./lib/router";
import { SearchProvider } from "./lib/searchState";
import { setPageTitle } from "./lib/title";
import type { Scope } from "./lib/types";

// Each page with the scope it needs: the menu shows what this visitor may do (search pages ask to sign in).
const NAV: [string, string, Scope | null][] = [
  ["search", "Search", null],
  ["add", "Add a dog", "write"],
  ["gallery", "Gallery", null],
  ["jobs", "Bulk jobs", "write"],
  ["alerts", "Alerts", "write"],
];

// The browser tab's title of each page (a dog's page names its dog once it has loaded).
const TITLES: Record<string, string> = {
  search: "Search",
  add: "Add a dog",
  gallery: "Gallery",
  jobs: "Bulk jobs",
  alerts: "Alerts",
  dogs: "Dog",
  match: "Why it matches",
};

function Page({ route }: { route: Route }) {
  const [name, id] = route.path;
  switch (name ?? "search") {
    case "search":
      return (
        <RequireScope scope="search" title="Find similar dogs" why="to search">
          <SearchPage />
        </RequireScope>
      );
    case "add":
      return (
        <RequireScope scope="write" title="Add a dog" why="to add dogs">
          <AddDogPage />
        </RequireScope>
      );
    case "gallery":
      return (
        <RequireScope scope="search" title="Gallery" why="to see the dogs">
          <GalleryPage
            key={route.params.get("status") ?? ""} // another status starts at its first page
            limit={Math.max(1, Math.min(100, Number(route.params.get("limit")) || 12))}
            status={STATUSES.find((s) => s === route.params.get("status"))}
            cursors={route.params.get("cursors")?.split(",").filter(Boolean) ?? []}
          />
        </RequireScope>
      );
    case "jobs":
      return (
        <RequireScope scope="write" title="Bulk jobs" why="to run bulk jobs">
          <JobsPage linked={route.params.get("job") ?? undefined} />
        </RequireScope>
      );
    case "alerts":
      return (
        <RequireScope scope="write" title="Alerts" why="to watch for new matches">
          <WatchesPage />
        </RequireScope>
      );
    case "dogs":
      if (id) {
        return (
          <RequireScope scope="search" title="Dog" why="to see this dog">
            <DogPage key={id} id={id} />
          </RequireScope>
        );
      }
      break;
    case "match":
      if (id) {
        return (
          <RequireScope scope="search" title="Why it matches" why="to compare dogs">
            <MatchPage
              key={`${id}?${route.params}`}
              id={id}
              from={route.params.get("from")}
              photo={route.params.get("photo")}
              search={route.params.get("search")}
            />
          </RequireScope>
        );
      }
      break;
  }
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <a href="#/search">Go to search</a>
      </p>
    </section>
  );
}

export function App() {
  return (
    <AuthProvider>
      <Shell />
    </AuthProvider>
  );
}

function Shell() {
  const route = useRoute();
  const { me, generation } = useAuth();
  const current = route.path[0] ?? "search";

  // After a navigation, move focus to the page so keyboard and screen-reader users start there; the tab says which.
  const first = useRef(true);
  useEffect(() => {
    setPageTitle(TITLES[current] ?? "Page not found");
    if (first.current) first.current = false;
    else document.getElementById("main")?.focus();
  }, [route.path.join("/")]);

  return (
    <SearchProvider>
      <a className="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main")?.focus();
      }}>
        Skip to content
      </a>
      <header className="topbar">
        <a className="brand" href="#/search">
          dogsearch
        </a>
        <nav aria-label="Main">
          {NAV.filter(([, , scope]) => !scope || (me && allows(me, scope))).map(([key, label]) => (
            <a key={key} href={`#/${key}`} aria-current={current === key ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <AccountControl />
      </header>
      <main id="main" tabIndex={-1}>
        {/* a new key (or none): the page loads again with it */}
        <Page key={generation} route={route} />
      </main>
    </SearchProvider>
  );
}
