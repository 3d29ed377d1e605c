from streams.commands.cli import main

raise SystemExit(main())
