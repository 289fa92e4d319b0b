"""The script every amlstep PythonScriptStep runs on the cluster: it loads the step plugin by name.

The environment of the step installs amlstep and the plugin's distribution; this file only hands
over to ``framework.backends.azure.entry``.
"""

from framework.backends.azure.entry import main

if __name__ == "__main__":
    main()
