import { useEffect, useRef } from "react";
import { AddDogPage } from "./pages/AddDogPage";
import { DogPage } from "./pages/DogPage";
import { GalleryPage } from "./pages/GalleryPage";
import { JobsPage } from "./pages/JobsPage";
import { MatchPage } from "./pages/MatchPage";
import { SearchPage } from "./pages/SearchPage";
import { useRoute, type Route } from "./lib/router";
import { SearchProvider } from "./lib/searchState";

const NAV = [
  ["search", "Search"],
  ["add", "Add a dog"],
  ["gallery", "Gallery"],
  ["jobs", "Bulk jobs"],
] as const;

function Page({ route }: { route: Route }) {
  const [name, id] = route.path;
  switch (name ?? "search") {
    case "search":
      return <SearchPage />;
    case "add":
      return <AddDogPage />;
    case "gallery":
      return <GalleryPage limit={Math.max(1, Math.min(100, Number(route.params.get("limit")) || 12))} />;
    case "jobs":
      return <JobsPage />;
    case "dogs":
      if (id) return <DogPage key={id} id={id} />;
      break;
    case "match":
      if (id) return <MatchPage key={`${id}-${route.params.get("from")}`} id={id} from={route.params.get("from")} />;
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
  const route = useRoute();
  const current = route.path[0] ?? "search";

  // After a navigation, move focus to the page so keyboard and screen-reader users start there.
  const first = useRef(true);
  useEffect(() => {
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
          {NAV.map(([key, label]) => (
            <a key={key} href={`#/${key}`} aria-current={current === key ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </SearchProvider>
  );
}
