from leadloop_sla_monitor.bootstrap import main

main()
