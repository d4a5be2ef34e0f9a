"""People's inputs: reading pictures, arrays and IDX files, and converting photos into the dataset's
28x28 form."""
