from leadloop_handoff.bootstrap import main

main()
