from portique.commands.main import main

raise SystemExit(main())
