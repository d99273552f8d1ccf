from dogsearch.cli import main

raise SystemExit(main())
