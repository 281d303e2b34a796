# JupyterLab settings for the chapters (scripts/lab.sh passes this file with --config).
# Saving a chapter strips what nbval must not compare (outputs of cells tagged
# nbval-ignore-output, widget state, execution timestamps), so running a chapter in the lab and saving it leaves
# the file the notebook tests expect.
c = get_config()  # noqa: F821 (get_config is provided by Jupyter when it loads this file)
c.ContentsManager.pre_save_hook = "rlviz.jupyter.notebooks.pre_save_hook"
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port_retries = 0  # the printed URL is the one served, or it fails loudly
c.ServerApp.open_browser = False  # the URL is printed; open it in any browser
c.ServerApp.allow_root = True  # CI machines run as root
c.LabApp.extension_manager = "readonly"  # nothing installed from inside the lab
c.LabApp.news_url = None  # no news feed fetched from the internet
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
