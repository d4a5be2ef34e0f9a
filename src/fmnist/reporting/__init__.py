"""What fmnist tells: the tables and their statistics, the figures, the TensorBoard events and the
report page."""
