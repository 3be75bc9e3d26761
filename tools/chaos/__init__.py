"""chaosbed's fault injector: Pumba's fault vocabulary on the Docker Engine API, with a crash-safe restore."""
