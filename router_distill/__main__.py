from router_distill.cli import main

raise SystemExit(main())
