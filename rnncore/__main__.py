from rnncore.cli import main

raise SystemExit(main())
