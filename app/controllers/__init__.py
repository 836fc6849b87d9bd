"""Controllers: own the background jobs (training, exports, comparison); panels only show them."""
