"""ecglens.data"""
