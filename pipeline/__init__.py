"""leadflow's pipeline: settings, the Faust app, the embedded broker and the command line."""
