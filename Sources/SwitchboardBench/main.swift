// Entry point of `switchboard-bench`; everything else lives in `BenchCommand`.
BenchCommand.main()
