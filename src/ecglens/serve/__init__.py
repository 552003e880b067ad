"""ecglens.serve"""
