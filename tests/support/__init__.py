"""What several test modules share: the processes they start, what those record."""
