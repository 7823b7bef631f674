from leadloop_metrics.bootstrap import main

main()
