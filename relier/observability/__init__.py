"""What Relier shows about itself: terminal views, inspection, metrics."""
