from distalign.cli import main

main()
