import sys

from bench.run import main
from bench.side import end_cleanly_on_signals

end_cleanly_on_signals()
sys.exit(main())
