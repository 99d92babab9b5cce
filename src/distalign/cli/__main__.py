from distalign.cli import app

app()
