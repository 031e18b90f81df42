"""The Label Studio round trip: a task schema as a labeling config (`config`), samples as
tasks with predictions (`tasks`), and Label Studio's annotation export read back as reviews
(`annotations`, `importing`). `names` is the one place that says what everything is called."""
