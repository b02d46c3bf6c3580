import sys

from interdict.bench.sync import main

sys.exit(main())
