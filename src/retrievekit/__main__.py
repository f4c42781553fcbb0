from retrievekit.cli.main import main

raise SystemExit(main())
