"""ecglens.signal"""
