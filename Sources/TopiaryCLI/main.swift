print("topiary")
