from leadloop_notifier.bootstrap import main

main()
