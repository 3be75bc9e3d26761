"""A run: one directory under the runs root, named by its run id, holding every file of one experiment.

layout (file names, run ids, the runs root, finding a run), meta (run.json), clock (the one time format),
timeline (fault windows, written by chaos and read by the report), jsonl (crash-safe append-only files).
"""
