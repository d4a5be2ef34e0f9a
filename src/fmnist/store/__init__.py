"""What fmnist keeps on disk: files written atomically, run folders, study folders, checkpoints and
a study's program files."""
