"""Analysis: judging a version from measurements (canary and blue-green gates).

- `expressions`: the safe condition language (`result >= 0.99`);
- `run`: pure: a run's spec from templates, one measurement's verdict, a metric's and a
  run's verdict;
- `envoy_stats`: per-version statistics from shoal's own Envoys, per measurement window;
- `providers`: the I/O of taking one measurement (envoy, web, exec).

The analysis controller (`shoal.controllers.analysis`) drives runs; the kinds are in
`shoal.api.analysis`.
"""
