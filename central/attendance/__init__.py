"""The live attendance dashboard of a meeting (organisers, approvers): counts, arrivals, gates, walk-ins."""
