"""The ``archevo`` command line and what only it needs: the commands (one module per group),
the plots, the campaign comparison and the dashboard. ``main.run`` is the console script."""
