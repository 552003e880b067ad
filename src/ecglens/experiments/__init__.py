"""ecglens.experiments"""
