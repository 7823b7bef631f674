from leadloop_ingest.bootstrap import main

main()
