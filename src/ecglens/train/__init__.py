"""ecglens.train"""
