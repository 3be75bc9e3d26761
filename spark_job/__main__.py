"""`python -m spark_job` starts the streaming query and blocks until it ends."""

from spark_job.job import main

main()
