"""ecglens.evaluate"""
