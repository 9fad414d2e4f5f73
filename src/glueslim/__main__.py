from glueslim.cli import main

main()
