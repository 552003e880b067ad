"""ecglens.models"""
