"""`python -m agentfleet.boot`: boot the model, signal readiness, run the agent loop."""

import sys

from agentfleet.boot.main import main

sys.exit(main(sys.argv[1:]))
