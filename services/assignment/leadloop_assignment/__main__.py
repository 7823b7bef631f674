from leadloop_assignment.bootstrap import main

main()
