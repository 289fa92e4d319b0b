"""Step plugins bundled with amlstep, registered through the ``amlstep`` entry-point group."""
