"""``python -m astar_ext.bench``: the speed benchmark (:mod:`astar_ext.bench.speed`)."""

from .speed import main

raise SystemExit(main())
