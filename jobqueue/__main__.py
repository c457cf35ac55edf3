from jobqueue.launch import main

if __name__ == "__main__":  # worker processes import the main module again: never run it
    main()
