from reactor.sandbox.server import main

main()
